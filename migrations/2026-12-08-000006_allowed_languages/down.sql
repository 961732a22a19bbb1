ALTER TABLE profiles DROP COLUMN allowed_languages;
