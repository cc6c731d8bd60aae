SELECT labeler, substr(prompt_hash, 1, 12) AS prompt, videos, agree, accuracy, said_win, mean_confidence
FROM pseudo_label_quality ORDER BY labeler
