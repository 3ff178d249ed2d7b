-- 005: which weekly reports were mailed, so `vsm run` and the daemon send each week exactly once.
CREATE TABLE report_sends (
    week       DATE PRIMARY KEY,      -- Monday of the ISO week (UTC) the report covers
    sent_at    TIMESTAMPTZ NOT NULL,
    recipients VARCHAR NOT NULL,      -- comma-separated To and Cc addresses
    file       VARCHAR                -- where the HTML copy was written
);
