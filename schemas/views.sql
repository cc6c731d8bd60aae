-- Views that every `xp sql` session has. Each statement is one view; keep them cheap.

-- One row per (protocol, video): the split the video belongs to under each shipped protocol.
-- Emotion protocol: by video id; cross-subject protocol: by the video's subject. Videos a
-- protocol does not list are in split 'pool'.
CREATE VIEW splits AS
SELECT p.protocol, v.video_id, v.subject_id, v.label, COALESCE(s.split, 'pool') AS split
FROM (SELECT DISTINCT protocol, split_by FROM protocols) p
CROSS JOIN videos v
LEFT JOIN protocols s
  ON s.protocol = p.protocol
 AND s.id = CASE WHEN p.split_by = 'video' THEN v.video_id ELSE v.subject_id END;

-- One row per video that has keypoints: how many frames were seen and how complete they are.
CREATE VIEW video_frames AS
SELECT video_id,
       COUNT(DISTINCT frame) AS frames,
       COUNT(*) AS rows,
       MIN(frame) AS first_frame,
       MAX(frame) AS last_frame,
       MAX(frame) + 1 - COUNT(DISTINCT frame) AS missing_frames,
       SUM(CASE WHEN person IS NULL THEN 1 ELSE 0 END) AS empty_frames
FROM keypoints
GROUP BY video_id;
