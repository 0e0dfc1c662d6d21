-- Serving accuracy per release and per kiosk.
SELECT model_version AS version, model_id, device, COUNT(*) AS judged,
    SUM(CASE WHEN serving_right THEN 1 ELSE 0 END) AS correct
FROM judged
WHERE predicted_at >= ?
GROUP BY model_version, model_id, device
ORDER BY version, model_id, device
