-- Create the extension in the regression database (every other test starts from here).
CREATE EXTENSION pg_insights;
SELECT extname, extversion FROM pg_extension WHERE extname = 'pg_insights';
