-- Each prediction once, with why it cannot train a model, or NULL when it is an example as far as
-- the feedback tells (its clip is checked next): reasons in this order, each prediction counted
-- under one. `classes` holds the class list (labels.txt).
CREATE TABLE examples AS
SELECT
    latest.*,
    CASE
        WHEN revoked THEN 'revoked'
        WHEN gloss IS NULL THEN 'no_label'
        WHEN gloss NOT IN (SELECT gloss FROM classes) THEN 'label_outside_classes'
        WHEN clip_key = '' THEN 'no_clip'
    END AS skip
FROM latest
