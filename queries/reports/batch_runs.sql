-- name: batch_runs
-- title: Batch job runs
-- description: Attempts of the batch jobs whose interval starts in the range, newest first, with status, rows and error; from the run history batch_job_runs.
-- param: from date default=today-6 -- first day (UTC) of interval starts, inclusive
-- param: to date default=today -- last day (UTC) of interval starts, inclusive
-- param: status enum default=any values=any|succeeded|failed|not_ready -- only runs with this status
-- param: limit int default=100 min=1 max=100000 -- most rows returned
-- columns: job, interval_start, interval_end, attempt, status, started, finished, rows_read, rows_written, error
SELECT job, toString(i_start, 'UTC') AS interval_start, toString(i_end, 'UTC') AS interval_end, attempt, status,
       toString(s, 'UTC') AS started, toString(f, 'UTC') AS finished, rows_read, rows_written, error
FROM (
    SELECT job, interval_start AS i_start, interval_end AS i_end, attempt, status, started AS s,
           finished AS f, finished_ms AS f_ms, rows_read, rows_written, error
    FROM batch_job_runs
    WHERE interval_start >= {from:start} AND interval_start < {to:end} AND ({status} = 'any' OR status = {status})
    ORDER BY f DESC, f_ms DESC, job
    LIMIT {limit}
)
ORDER BY f DESC, f_ms DESC, job
