-- Serving accuracy per release and per word signed: the word the user named or confirmed (signs
-- answered only "wrong" have no known word and are left out here).
SELECT model_version AS version, model_id, truth AS word, COUNT(*) AS judged,
    SUM(CASE WHEN serving_right THEN 1 ELSE 0 END) AS correct
FROM judged
WHERE truth IS NOT NULL AND predicted_at >= ?
GROUP BY model_version, model_id, truth
ORDER BY version, model_id, word
