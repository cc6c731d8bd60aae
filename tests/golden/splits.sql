SELECT protocol, video_id, subject_id, label, split FROM splits ORDER BY protocol, video_id
