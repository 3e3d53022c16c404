-- Community (issue #12, PROTOCOL §10.2): posts, likes, comments and their counts.
--
-- Places. A post's optional location is shown to others rounded to 0.01 degrees
-- (`coarse_deg`, ≤ 0.005° off on each axis: ≤ 556 m north-south), and the nearby feed
-- matches on that rounded point, so a search cannot place a post more precisely than
-- what it shows. Adoption listings (0009) use the same rounding.
--
-- Feed order is newest first, keyset on (created_at, id); created_at is
-- clock_timestamp(), not the transaction start, so it follows commit order closely.
-- Three btree indexes serve the three scopes without a sort:
--   recent  posts_recent       (created_at DESC, id DESC)
--   author  posts_author       (author_id, created_at DESC, id DESC)
--   nearby  posts_cell_recent  (cell, created_at DESC, id DESC)
-- `cell` is the 1°×1° latitude/longitude square of the rounded point. A nearby page
-- reads each square that the search circle's bounding box touches in time order (one
-- index range per square, LIMIT each), keeps posts whose exact great-circle distance
-- is within the radius, and merges: cost ~ squares × page size, whatever the number of
-- posts in the area. Only core PostgreSQL is used (the embedded server has no
-- btree_gist/PostGIS; see 0006_lost_found.sql for the distance function).
--
-- Counts. like_count and comment_count are exact: post_likes and post_comments are the
-- truth, and each change of them adds ±1 to a counter row in the same transaction.
-- The counters are spread over 8 rows per post (`shard`, from the user id), so users
-- liking one hot post at once wait on each other's row lock only 1 time in 8 instead
-- of queueing on one counter row; readers sum the (at most 8) rows.

CREATE FUNCTION coarse_deg(deg float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT round(deg::numeric, 2)::float8
$$;

-- The 1°×1° square of a point: rows from the south pole (latitude 90 is its own row),
-- columns from -180 (longitude 180 wraps to the -180 column).
CREATE FUNCTION geo_cell(lat float8, lng float8)
RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (floor(lat)::integer + 90) * 360 + ((floor(lng)::integer + 180) % 360)
$$;

CREATE TABLE posts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body text NOT NULL CHECK (length(body) BETWEEN 1 AND 5000),
    photo_ids uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(photo_ids) <= 10),
    lat float8 CHECK (lat BETWEEN -90 AND 90),
    lng float8 CHECK (lng BETWEEN -180 AND 180),
    pub_lat float8 GENERATED ALWAYS AS (coarse_deg(lat)) STORED,
    pub_lng float8 GENERATED ALWAYS AS (coarse_deg(lng)) STORED,
    cell integer GENERATED ALWAYS AS (geo_cell(coarse_deg(lat), coarse_deg(lng))) STORED,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    edited_at timestamptz,
    -- Deleted posts stay (for moderation and reports) but are gone for everyone.
    deleted_at timestamptz,
    deleted_by uuid,
    CHECK ((lat IS NULL) = (lng IS NULL))
);
CREATE INDEX posts_recent ON posts (created_at DESC, id DESC) WHERE deleted_at IS NULL;
-- Not partial: it also serves account deletion (the cascade from users), deleted posts
-- included.
CREATE INDEX posts_author ON posts (author_id, created_at DESC, id DESC);
CREATE INDEX posts_cell_recent ON posts (cell, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

-- One row per user who ever liked the post; `active` is the like's state now. The row
-- stays on unlike so that a like after an unlike does not notify the author again.
CREATE TABLE post_likes (
    post_id uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id)
);
CREATE INDEX post_likes_user ON post_likes (user_id);

CREATE TABLE post_comments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    deleted_at timestamptz,
    deleted_by uuid
);
CREATE INDEX post_comments_post ON post_comments (post_id, created_at, id)
    WHERE deleted_at IS NULL;
CREATE INDEX post_comments_author ON post_comments (author_id);

-- Sums over a post's rows are its like_count and comment_count (active likes, comments
-- not deleted). Rows appear on first use.
CREATE TABLE post_counters (
    post_id uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    shard smallint NOT NULL CHECK (shard BETWEEN 0 AND 7),
    likes integer NOT NULL DEFAULT 0 CHECK (likes >= 0),
    comments integer NOT NULL DEFAULT 0 CHECK (comments >= 0),
    PRIMARY KEY (post_id, shard)
);
