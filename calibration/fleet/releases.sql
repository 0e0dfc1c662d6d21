-- Accuracy per release: as the serving model (every judged sign it showed) and in shadow (the
-- signs whose right word the user named). The parameters: the first second counted (YYYY-MM-DDTHH:MM:SS,
-- or '' for all), twice. `model_id` names a local bundle, which has no release version.
SELECT 'serving' AS role, model_version AS version, model_id, COUNT(*) AS judged,
    SUM(CASE WHEN serving_right THEN 1 ELSE 0 END) AS correct
FROM judged
WHERE predicted_at >= ?
GROUP BY model_version, model_id
UNION ALL
SELECT 'shadow' AS role, shadow_version AS version, '' AS model_id, COUNT(*) AS judged,
    SUM(CASE WHEN shadow_right THEN 1 ELSE 0 END) AS correct
FROM judged
WHERE shadow_judged AND predicted_at >= ?
GROUP BY shadow_version
ORDER BY role, version, model_id
