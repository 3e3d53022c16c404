-- Adoption (issue #12, PROTOCOL §10.1): listings and applications.
--
-- Listing status: available -> pending (an application accepted) -> adopted;
-- withdrawn from available or pending; pending -> available when the accepted
-- application is withdrawn (or the lister reopens the listing). adopted and withdrawn
-- are final. Application status: submitted -> accepted | rejected | withdrawn, and
-- accepted -> withdrawn (applicant) or rejected (the listing reopened or withdrawn).
--
-- Geo. Others see a listing's point rounded to 0.01° (`coarse_deg`, 0008), and the
-- nearest-first search runs on that point: a GiST index on it (point_ops), a box test
-- against the search circle's bounding box (`lf_cap_box`, 0006, shifted by ±360° at
-- the antimeridian), then the exact haversine distance (`lf_distance_m`) to filter and
-- order. Core PostgreSQL only, as in 0006.

CREATE TABLE adoption_listings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lister_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    pet_id uuid NOT NULL REFERENCES pets (id) ON DELETE CASCADE,
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 120),
    description text NOT NULL CHECK (length(description) BETWEEN 1 AND 5000),
    lat float8 NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng float8 NOT NULL CHECK (lng BETWEEN -180 AND 180),
    pub_lat float8 NOT NULL GENERATED ALWAYS AS (coarse_deg(lat)) STORED,
    pub_lng float8 NOT NULL GENERATED ALWAYS AS (coarse_deg(lng)) STORED,
    pub_point point NOT NULL GENERATED ALWAYS AS (point(coarse_deg(lng), coarse_deg(lat))) STORED,
    fee_cents integer CHECK (fee_cents BETWEEN 0 AND 1000000),
    currency text CHECK (currency ~ '^[A-Z]{3}$'),
    status text NOT NULL DEFAULT 'available'
        CHECK (status IN ('available', 'pending', 'adopted', 'withdrawn')),
    photo_ids uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(photo_ids) <= 10),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((fee_cents IS NULL) = (currency IS NULL))
);
-- One open listing per pet.
CREATE UNIQUE INDEX adoption_listings_open_pet ON adoption_listings (pet_id)
    WHERE status IN ('available', 'pending');
CREATE INDEX adoption_listings_available_geo ON adoption_listings USING gist (pub_point)
    WHERE status = 'available';
CREATE INDEX adoption_listings_available_recent ON adoption_listings (created_at DESC, id DESC)
    WHERE status = 'available';
CREATE INDEX adoption_listings_lister ON adoption_listings (lister_id, created_at DESC);

CREATE TABLE adoption_applications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    listing_id uuid NOT NULL REFERENCES adoption_listings (id) ON DELETE CASCADE,
    applicant_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message text NOT NULL CHECK (length(message) BETWEEN 1 AND 2000),
    status text NOT NULL DEFAULT 'submitted'
        CHECK (status IN ('submitted', 'accepted', 'rejected', 'withdrawn')),
    conversation_id uuid REFERENCES conversations (id) ON DELETE SET NULL,
    note text CHECK (length(note) <= 1000),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    decided_at timestamptz
);
-- One live application per applicant and listing.
CREATE UNIQUE INDEX adoption_applications_live ON adoption_applications (listing_id, applicant_id)
    WHERE status IN ('submitted', 'accepted');
-- At most one accepted application per listing: the backstop behind the listing row
-- lock that makes "two accepts at once" have exactly one winner.
CREATE UNIQUE INDEX adoption_applications_accepted ON adoption_applications (listing_id)
    WHERE status = 'accepted';
CREATE INDEX adoption_applications_listing
    ON adoption_applications (listing_id, created_at DESC, id DESC);
CREATE INDEX adoption_applications_applicant
    ON adoption_applications (applicant_id, created_at DESC, id DESC);
CREATE INDEX adoption_applications_conversation ON adoption_applications (conversation_id)
    WHERE conversation_id IS NOT NULL;
