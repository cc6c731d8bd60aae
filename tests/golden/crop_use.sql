SELECT substr(crop_hash, 1, 12) AS crop, format, width, height, frames, videos FROM crop_use ORDER BY frames DESC, crop
