-- Both models judged on the same signs: the serving release and the one in shadow, on each sign
-- whose right word the user named; the four cells of McNemar's table.
SELECT model_version AS serving_version, shadow_version,
    COUNT(*) AS pairs,
    SUM(CASE WHEN serving_right AND shadow_right THEN 1 ELSE 0 END) AS both_right,
    SUM(CASE WHEN serving_right AND NOT shadow_right THEN 1 ELSE 0 END) AS serving_only,
    SUM(CASE WHEN shadow_right AND NOT serving_right THEN 1 ELSE 0 END) AS shadow_only,
    SUM(CASE WHEN NOT serving_right AND NOT shadow_right THEN 1 ELSE 0 END) AS both_wrong
FROM judged
WHERE shadow_judged AND predicted_at >= ?
GROUP BY model_version, shadow_version
ORDER BY serving_version, shadow_version
