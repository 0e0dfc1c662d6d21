-- One row per prediction: its latest feedback wins (received_at, then feedback_id, break ties).
-- `gloss` is the word the answer gives: the label when one was named, else the predicted word when
-- the answer was "right" (never the decoder's placeholder for a low confidence, the third
-- parameter); NULL for "wrong" without a label. Cells the kiosk quoted against spreadsheet
-- formulas (a leading ' before = + - @ tab or CR, edge/runtime/sync.py) are unquoted.
-- `revoked`: the prediction or its device is listed in `revoked` (PREFIX/revocations/).
-- `cohort`, `shadow_version`, `shadow_word`: a staged rollout's columns (asl-edge fleet report), ''
-- in batches from before they existed.
-- Parameters: the first and last partition day (YYYY-MM-DD), the placeholder word.
-- Standard SQL (a window function, CASE, COALESCE, substr, chr), written to run as it is on
-- Athena/Trino and Spark SQL over the README's external table.
CREATE TABLE latest AS
WITH ranked AS (
    SELECT
        feedback.*,
        row_number() OVER (
            PARTITION BY prediction_id
            ORDER BY received_at DESC, CAST(feedback_id AS BIGINT) DESC
        ) AS newest
    FROM feedback
    WHERE date >= ? AND date <= ? AND COALESCE(prediction_id, '') <> ''
),
decoded AS (
    SELECT
        CASE WHEN substr(prediction_id, 1, 1) = chr(39) AND substr(prediction_id, 2, 1) IN ('=', '+', '-', '@', chr(9), chr(13))
            THEN substr(prediction_id, 2) ELSE prediction_id END AS prediction_id,
        device,
        date,
        received_at,
        predicted_at,
        CASE WHEN substr(predicted_word, 1, 1) = chr(39) AND substr(predicted_word, 2, 1) IN ('=', '+', '-', '@', chr(9), chr(13))
            THEN substr(predicted_word, 2) ELSE predicted_word END AS predicted_word,
        top_k,
        correct = 'true' AS correct,
        CASE WHEN substr(label, 1, 1) = chr(39) AND substr(label, 2, 1) IN ('=', '+', '-', '@', chr(9), chr(13))
            THEN substr(label, 2) ELSE COALESCE(label, '') END AS label,
        CASE WHEN substr(model_id, 1, 1) = chr(39) AND substr(model_id, 2, 1) IN ('=', '+', '-', '@', chr(9), chr(13))
            THEN substr(model_id, 2) ELSE COALESCE(model_id, '') END AS model_id,
        CASE WHEN substr(model_version, 1, 1) = chr(39) AND substr(model_version, 2, 1) IN ('=', '+', '-', '@', chr(9), chr(13))
            THEN substr(model_version, 2) ELSE COALESCE(model_version, '') END AS model_version,
        CASE WHEN substr(clip_key, 1, 1) = chr(39) AND substr(clip_key, 2, 1) IN ('=', '+', '-', '@', chr(9), chr(13))
            THEN substr(clip_key, 2) ELSE COALESCE(clip_key, '') END AS clip_key,
        COALESCE(cohort, '') AS cohort,
        CASE WHEN substr(shadow_version, 1, 1) = chr(39) AND substr(shadow_version, 2, 1) IN ('=', '+', '-', '@', chr(9), chr(13))
            THEN substr(shadow_version, 2) ELSE COALESCE(shadow_version, '') END AS shadow_version,
        CASE WHEN substr(shadow_word, 1, 1) = chr(39) AND substr(shadow_word, 2, 1) IN ('=', '+', '-', '@', chr(9), chr(13))
            THEN substr(shadow_word, 2) ELSE COALESCE(shadow_word, '') END AS shadow_word
    FROM ranked
    WHERE newest = 1
)
SELECT
    decoded.*,
    substr(predicted_at, 1, 10) AS predicted_day,
    CASE
        WHEN label <> '' THEN label
        WHEN correct AND predicted_word <> ? THEN predicted_word
    END AS gloss,
    (prediction_id IN (SELECT id FROM revoked) OR device IN (SELECT id FROM revoked)) AS revoked
FROM decoded
