DROP TABLE user_prompts;
DROP TABLE profiles;
DROP DOMAIN e164;
