-- The class list when no model's is given: every word the kiosks predicted or ranked in top_k, over
-- the predictions not revoked. top_k is JSON ([{"word": "book", "score": 0.9}, ...]): its words
-- come out JSON-escaped (`escaped`), to be unescaped by the caller.
-- regexp_extract_all and CROSS JOIN UNNEST run on DuckDB and Athena/Trino; Spark SQL writes the
-- second half as LATERAL VIEW explode(regexp_extract_all(...)).
SELECT predicted_word AS word, false AS escaped
FROM latest
WHERE NOT revoked
UNION
SELECT ranked.word, true AS escaped
FROM latest
CROSS JOIN UNNEST(regexp_extract_all(top_k, '"word": "([^"]*)"', 1)) AS ranked (word)
WHERE NOT revoked
