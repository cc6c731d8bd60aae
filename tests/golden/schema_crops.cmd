schema
crops
