-- The languages a tenant's agent may answer in. Empty (the default): always
-- `preferred_language`. Otherwise a call is answered in the language of the
-- caller's country code when it is one of these (+250 rw, +33 fr, +81 ja, ...),
-- else in `preferred_language`.
ALTER TABLE profiles
    ADD COLUMN allowed_languages text[] NOT NULL DEFAULT '{}'
        CHECK (array_position(allowed_languages, NULL) IS NULL
               AND array_to_string(allowed_languages, ' ') ~ '^([a-z]{2,3}(-[A-Za-z0-9]{2,8})*( |$))*$');
