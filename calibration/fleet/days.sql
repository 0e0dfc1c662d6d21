-- Accuracy per release and UTC day of the prediction, serving and in shadow (as releases.sql).
SELECT 'serving' AS role, model_version AS version, model_id, day, COUNT(*) AS judged,
    SUM(CASE WHEN serving_right THEN 1 ELSE 0 END) AS correct
FROM judged
WHERE predicted_at >= ?
GROUP BY model_version, model_id, day
UNION ALL
SELECT 'shadow' AS role, shadow_version AS version, '' AS model_id, day, COUNT(*) AS judged,
    SUM(CASE WHEN shadow_right THEN 1 ELSE 0 END) AS correct
FROM judged
WHERE shadow_judged AND predicted_at >= ?
GROUP BY shadow_version, day
ORDER BY role, version, model_id, day
