-- The feedback rows read (within the days chosen) and the predictions they answer.
SELECT
    (SELECT count(*) FROM feedback WHERE date >= ? AND date <= ?) AS feedback_rows,
    (SELECT count(*) FROM latest) AS predictions
