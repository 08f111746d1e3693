-- The handler a function's code is called through: `name` or Lambda's `file.name`.
ALTER TABLE functions ADD COLUMN handler TEXT NOT NULL DEFAULT 'handler';
