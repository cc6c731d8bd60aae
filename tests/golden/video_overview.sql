SELECT * FROM video_overview ORDER BY video_id
