SELECT video_id, frame, person, person_id, body, hand_right[1] AS rh_wrist_x FROM keypoints WHERE frame = 1 ORDER BY video_id
