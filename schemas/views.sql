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

-- One row per video: its gold label, its split under the official emotion protocol, and how
-- much of every modality the store holds for it: keypoint frames, frames with a crop, image
-- embedding vectors (of all models together), transcript segments and characters. `pseudo_label` is the labelers'
-- answer when they agree ('mixed' when they do not, null when there is none).
CREATE VIEW video_overview AS
SELECT v.video_id,
       v.subject_id,
       v.label,
       s.split,
       COALESCE(k.frames, 0) AS frames,
       COALESCE(c.crops, 0) AS crops,
       COALESCE(e.vectors, 0) AS vectors,
       COALESCE(t.segments, 0) AS segments,
       COALESCE(t.chars, 0) AS chars,
       p.pseudo_label,
       COALESCE(p.labelers, 0) AS labelers
FROM videos v
LEFT JOIN splits s ON s.video_id = v.video_id AND s.protocol = 'imigue-emotion'
LEFT JOIN video_frames k ON k.video_id = v.video_id
LEFT JOIN (SELECT video_id, COUNT(crop_hash) AS crops FROM frames GROUP BY video_id) c
  ON c.video_id = v.video_id
LEFT JOIN (SELECT video_id, COUNT(*) AS vectors FROM embeddings GROUP BY video_id) e
  ON e.video_id = v.video_id
LEFT JOIN (SELECT video_id, COUNT(*) AS segments, SUM(character_length(text)) AS chars
           FROM transcripts GROUP BY video_id) t
  ON t.video_id = v.video_id
LEFT JOIN (SELECT video_id,
                  CASE WHEN COUNT(DISTINCT label) = 1 THEN MIN(label) ELSE 'mixed' END AS pseudo_label,
                  COUNT(DISTINCT labeler) AS labelers
           FROM pseudo_labels GROUP BY video_id) p
  ON p.video_id = v.video_id;

-- One row per (labeler, prompt): how often its pseudo-labels agree with the gold labels.
CREATE VIEW pseudo_label_quality AS
SELECT p.labeler,
       p.prompt_hash,
       COUNT(*) AS videos,
       SUM(CASE WHEN p.label = v.label THEN 1 ELSE 0 END) AS agree,
       AVG(CASE WHEN p.label = v.label THEN 1.0 ELSE 0.0 END) AS accuracy,
       SUM(CASE WHEN p.label = 'win' THEN 1 ELSE 0 END) AS said_win,
       AVG(p.confidence) AS mean_confidence
FROM pseudo_labels p
JOIN videos v ON v.video_id = p.video_id
GROUP BY p.labeler, p.prompt_hash;

-- One row per crop: how many frames show it (a crop shown twice is stored once).
CREATE VIEW crop_use AS
SELECT c.crop_hash, c.format, c.width, c.height, c.size,
       COUNT(f.frame) AS frames, COUNT(DISTINCT f.video_id) AS videos
FROM crops c
LEFT JOIN frames f ON f.crop_hash = c.crop_hash
GROUP BY c.crop_hash, c.format, c.width, c.height, c.size;
