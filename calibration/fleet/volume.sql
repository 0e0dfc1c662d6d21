-- How much feedback comes: answers per release, cohort and day, the kiosks that sent them, and
-- how many named the word. Only answered signs leave a kiosk (a sign nobody answered is never
-- synced), so this is feedback per kiosk-day, not a share of all predictions.
SELECT model_version AS version, model_id, cohort, day, COUNT(*) AS answers,
    COUNT(DISTINCT device) AS kiosks,
    SUM(CASE WHEN truth IS NOT NULL THEN 1 ELSE 0 END) AS named
FROM judged
WHERE predicted_at >= ?
GROUP BY model_version, model_id, cohort, day
ORDER BY version, model_id, cohort, day
