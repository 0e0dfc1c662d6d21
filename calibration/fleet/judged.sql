-- The signs the users judged, one row per prediction: its latest answer (the table `latest`, made
-- by calibration/dataset/latest.sql from the synced batches), revoked predictions and devices left
-- out. `serving_right` is the user's answer on the word the kiosk showed; `truth` is the word they
-- named or confirmed (NULL when they only said "wrong"), so a shadow's word is judged only where
-- the truth is known and the shadow answered. `predicted_at` is cut to the second
-- (YYYY-MM-DDTHH:MM:SS) so that it compares as text with a pointer's times.
-- Standard SQL (CASE, substr), as the dataset's queries: it runs on Athena/Trino and Spark SQL too.
CREATE TABLE judged AS
SELECT
    prediction_id,
    device,
    predicted_day AS day,
    substr(predicted_at, 1, 19) AS predicted_at,
    model_version,
    model_id,
    cohort,
    predicted_word,
    correct AS serving_right,
    gloss AS truth,
    shadow_version,
    shadow_word,
    (gloss IS NOT NULL AND shadow_version <> '' AND shadow_word <> '') AS shadow_judged,
    (gloss IS NOT NULL AND shadow_word = gloss) AS shadow_right
FROM latest
WHERE NOT revoked
