-- Labels the users gave that the class list lacks: new-word candidates, with how often.
SELECT gloss AS word, count(*) AS predictions
FROM examples
WHERE skip = 'label_outside_classes'
GROUP BY gloss
ORDER BY gloss
