-- Admin, second step (issue #13, PROTOCOL §10.4): moderation of listings, and what the
-- analytics of posts, adoptions and community activity read.

-- --- listings removed by moderation ---------------------------------------------------------
-- `admin.moderation.decide` rejecting a listing withdraws it (as its lister would: open
-- applications rejected, applicants told) and sets removed_at: from then on it is
-- `not_found` for everyone but its lister, applicants included (a withdrawn listing stays
-- visible to those who applied; a removed one does not). The lister still sees it,
-- withdrawn, so they know what happened to it.
ALTER TABLE adoption_listings ADD COLUMN removed_at timestamptz;

-- --- when a listing was adopted ---------------------------------------------------------------
-- `adopted` is final, so the moment a listing becomes adopted is one fact; updated_at is
-- not it (a later photo removal by moderation changes updated_at). Set by trigger, so
-- every writer records it. Listings adopted before this migration take their updated_at
-- (adopted listings could not be changed after adoption until now).
ALTER TABLE adoption_listings ADD COLUMN adopted_at timestamptz;
UPDATE adoption_listings SET adopted_at = updated_at WHERE status = 'adopted';

CREATE FUNCTION adoption_listing_adopted_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status = 'adopted' AND NEW.adopted_at IS NULL THEN  -- an import may say when
            NEW.adopted_at = clock_timestamp();
        END IF;
    ELSIF NEW.status = 'adopted' AND OLD.status <> 'adopted' THEN
        NEW.adopted_at = clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER adoption_listings_adopted_at BEFORE INSERT OR UPDATE OF status
    ON adoption_listings FOR EACH ROW EXECUTE FUNCTION adoption_listing_adopted_at();

-- admin.analytics `adoptions`: listings adopted per day.
CREATE INDEX adoption_listings_adopted ON adoption_listings (adopted_at)
    WHERE adopted_at IS NOT NULL;

-- --- analytics ------------------------------------------------------------------------------
-- As in 0011: these tables are written in time order, so a BRIN index on the creation
-- time is tiny and lets a range count (posts per day; active users: who posted,
-- commented, liked, listed, applied or went live) skip the rest of the table.
CREATE INDEX posts_created_brin ON posts USING brin (created_at);
CREATE INDEX post_comments_created_brin ON post_comments USING brin (created_at);
CREATE INDEX post_likes_created_brin ON post_likes USING brin (created_at);
CREATE INDEX adoption_listings_created_brin ON adoption_listings USING brin (created_at);
CREATE INDEX adoption_applications_created_brin ON adoption_applications
    USING brin (created_at);
CREATE INDEX live_streams_started_brin ON live_streams USING brin (started_at);
