schema
videos
