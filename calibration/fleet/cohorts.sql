-- Serving accuracy per release and the kiosk's cohort when it predicted ('' without a channel).
SELECT model_version AS version, model_id, cohort, COUNT(*) AS judged,
    SUM(CASE WHEN serving_right THEN 1 ELSE 0 END) AS correct
FROM judged
WHERE predicted_at >= ?
GROUP BY model_version, model_id, cohort
ORDER BY version, model_id, cohort
