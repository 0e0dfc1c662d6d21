-- The predictions with a label in the class list and a consented clip, in id order.
SELECT
    prediction_id, device, date, predicted_day, gloss, predicted_word, correct, model_id,
    model_version, clip_key
FROM examples
WHERE skip IS NULL
ORDER BY prediction_id
