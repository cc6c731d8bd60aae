SELECT protocol, split_by, split, COUNT(*) AS ids FROM protocols GROUP BY 1, 2, 3 ORDER BY 1, 3
