SELECT v.label, COUNT(DISTINCT v.video_id) AS videos, SUM(f.frames) AS frames FROM videos v LEFT JOIN video_frames f ON f.video_id = v.video_id GROUP BY v.label ORDER BY v.label
