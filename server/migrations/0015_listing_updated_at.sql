-- A new listing's updated_at is its created_at.
--
-- Both columns defaulted to clock_timestamp(), which PostgreSQL evaluates once per
-- column, so a fresh row could read updated_at a microsecond after created_at. Every
-- writer goes through this trigger, so the fact holds whoever inserts the row.
CREATE FUNCTION adoption_listings_updated_at_is_created_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := NEW.created_at;
    RETURN NEW;
END;
$$;

CREATE TRIGGER adoption_listings_updated_at_is_created_at
    BEFORE INSERT ON adoption_listings
    FOR EACH ROW EXECUTE FUNCTION adoption_listings_updated_at_is_created_at();
