sql
SELECT video_id, label FROM videos ORDER BY video_id
--format
csv
