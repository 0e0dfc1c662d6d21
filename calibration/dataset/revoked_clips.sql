-- The clip keys of revoked predictions: their local copies are deleted.
SELECT clip_key
FROM latest
WHERE revoked AND clip_key <> ''
