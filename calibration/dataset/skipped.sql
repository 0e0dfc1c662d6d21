-- Predictions that are not examples, by reason.
SELECT skip AS reason, count(*) AS predictions
FROM examples
WHERE skip IS NOT NULL
GROUP BY skip
ORDER BY skip
