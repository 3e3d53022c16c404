-- Uploads (issue #8): one row per uploaded image, from presign to moderation.
--
-- status: awaiting_upload (presigned: the client is uploading to the store)
--      → processing (the server is verifying and cleaning it)
--      → pending (clean image stored, waiting for moderation)
--      → approved | rejected.
-- Rows still in awaiting_upload/processing after expires_at + grace are
-- abandoned: the cleanup task deletes them and their objects.
-- Ids are gen_random_uuid() (122 random bits): unguessable.
CREATE TABLE uploads (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose text NOT NULL
        CHECK (purpose IN ('pet_photo', 'chat_attachment', 'lost_poster', 'adoption_photo',
                           'avatar')),
    status text NOT NULL
        CHECK (status IN ('awaiting_upload', 'processing', 'pending', 'approved', 'rejected')),
    -- How the bytes arrive: through the app (direct), a presigned POST form, or
    -- presigned multipart parts (resumable).
    flow text NOT NULL CHECK (flow IN ('direct', 'presigned', 'multipart')),
    -- Declared by the client until processed; then the stored clean image's.
    content_type text NOT NULL,
    size bigint NOT NULL CHECK (size > 0),
    -- Bytes the client sent (declared for presigned flows); counts toward the daily quota.
    received_bytes bigint NOT NULL CHECK (received_bytes > 0),
    width integer,
    height integer,
    incoming_key text,          -- where a presigned upload lands before processing
    multipart_id text,          -- the store's id of a multipart upload
    part_size bigint,
    object_key text,            -- the clean image
    thumb_key text,             -- its thumbnail
    expires_at timestamptz NOT NULL,  -- presign (or processing) deadline
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    moderated_at timestamptz,
    moderation_reason text,
    -- Attached to something anyone may see (a pet profile, a lost poster, an
    -- adoption listing). Only approved AND public uploads are visible to others.
    public boolean NOT NULL DEFAULT false,
    CHECK (status IN ('awaiting_upload', 'processing') OR object_key IS NOT NULL)
);

CREATE INDEX uploads_owner_created ON uploads (owner_id, created_at);
CREATE INDEX uploads_unfinished ON uploads (expires_at)
    WHERE status IN ('awaiting_upload', 'processing');
CREATE INDEX uploads_moderation_queue ON uploads (created_at) WHERE status = 'pending';
