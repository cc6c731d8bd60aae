SELECT * FROM video_frames ORDER BY video_id
