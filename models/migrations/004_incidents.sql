-- 004: incidents from GitHub issues, Jira and PagerDuty, and the settings that link them to deployments.
-- The connectors (connectors/github_issues.py, jira.py, pagerduty.py) fill the two typed tables; the
-- mapper's 100_incidents.sql and 110_dora.sql read them together with the settings tables below.

-- One row per incident ticket as its source last showed it.
--   source           'github' (issues with an incident label), 'jira' or 'pagerduty'
--   incident_id      the id within the source: 'owner/repo#12', the Jira key 'OPS-7', the PagerDuty id
--                    'Q3YON8WNWTZMRQ'
--   repo             owner/name when the source itself knows it (GitHub issues); NULL otherwise, then the
--                    mapper derives it from service, components or labels through map_incident_services
--   title, body      the text searched for explicit references (a SHA, a PR #number or URL, a deployment id)
--   acknowledged_at  PagerDuty's first acknowledgement; Jira's first change into an 'indeterminate' status;
--                    NULL for GitHub issues
--   resolved_at      GitHub closed_at, Jira resolutiondate, PagerDuty's resolve log entry; NULL while open
--   status           the source's own status name (localised and customised in Jira): display only
--   status_category  new | indeterminate | done (Jira's statusCategory.key; PagerDuty triggered |
--                    acknowledged | resolved and GitHub open | closed are mapped onto the same three)
--   service          PagerDuty service id; Jira project key
--   components       JSON list of Jira component names
--   urgency          PagerDuty urgency (high, low); Jira priority name
--   labels           JSON list of label names (GitHub, Jira)
--   refs             JSON list of further texts that may name a SHA, PR or deployment (PagerDuty's
--                    incident_key, configured Jira fields)
CREATE TABLE incident_records (
    source          VARCHAR NOT NULL,
    incident_id     VARCHAR NOT NULL,
    repo            VARCHAR,
    title           VARCHAR,
    body            VARCHAR,
    url             VARCHAR,
    created_at      TIMESTAMPTZ NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    resolved_at     TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ,
    status          VARCHAR,
    status_category VARCHAR,
    service         VARCHAR,
    components      JSON,
    urgency         VARCHAR,
    labels          JSON,
    refs            JSON,
    PRIMARY KEY (source, incident_id)
);

-- Status history: one row per change of an incident's status (Jira changelog items of field 'status',
-- PagerDuty trigger / acknowledge / resolve log entries, GitHub opened / closed).
--   change_id   unique within the incident: Jira '<history id>/<item index>', PagerDuty log entry id,
--               GitHub 'opened' / 'closed'
--   from_*      NULL for the first status (the incident's creation)
--   *_category  new | indeterminate | done, resolved from status ids (never from the localised names)
CREATE TABLE incident_status_changes (
    source        VARCHAR NOT NULL,
    incident_id   VARCHAR NOT NULL,
    change_id     VARCHAR NOT NULL,
    changed_at    TIMESTAMPTZ NOT NULL,
    from_status   VARCHAR,
    to_status     VARCHAR,
    from_category VARCHAR,
    to_category   VARCHAR,
    PRIMARY KEY (source, incident_id, change_id)
);

-- Settings of incident linking, copied from the config by the mapper before it runs 100/110 (at most one
-- row; when empty the views use the default window of 7 days). Fill it with
--   DELETE FROM map_incident_settings;
--   INSERT INTO map_incident_settings (link_window_s) VALUES (?);  -- parse_duration(link_window)
--   link_window_s  how long after a production deployment finished an incident without an explicit
--                  reference is still blamed on it (the time-window link); none beyond it
CREATE TABLE map_incident_settings (
    id            INTEGER PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    link_window_s DOUBLE NOT NULL CHECK (link_window_s >= 0)
);

-- [incidents.service_map]: which PagerDuty service ids, Jira components or labels belong to which repo.
-- Fill it with
--   DELETE FROM map_incident_services;
--   INSERT INTO map_incident_services (key, repo) SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]);
-- An incident's repo is, in this order: the source's own (GitHub), its service's, its first mapped
-- component's, its first mapped label's.
CREATE TABLE map_incident_services (
    key  VARCHAR PRIMARY KEY,
    repo VARCHAR NOT NULL
);
