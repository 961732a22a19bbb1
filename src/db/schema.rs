// @generated automatically by Diesel CLI.

diesel::table! {
    audit_log (id) {
        id -> Int8,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        details -> Jsonb,
        at -> Timestamptz,
    }
}

diesel::table! {
    call_logs (id) {
        id -> Uuid,
        call_sid -> Text,
        user_id -> Nullable<Uuid>,
        caller_number -> Nullable<Text>,
        recipient_number -> Nullable<Text>,
        direction -> Text,
        channel -> Text,
        number_used -> Nullable<Text>,
        status -> Text,
        started_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
        duration_seconds -> Nullable<Int4>,
        transcript -> Jsonb,
        summary -> Nullable<Text>,
        end_reason -> Nullable<Text>,
        transferred_to -> Nullable<Text>,
        transferred_at -> Nullable<Timestamptz>,
        instance_id -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        stream_sid -> Nullable<Text>,
    }
}

diesel::table! {
    campaign_targets (id) {
        id -> Uuid,
        campaign_id -> Uuid,
        position -> Int4,
        to_number -> Text,
        status -> Text,
        attempts -> Int4,
        instance_id -> Nullable<Text>,
        from_number -> Nullable<Text>,
        call_sid -> Nullable<Text>,
        next_attempt_at -> Timestamptz,
        claimed_at -> Nullable<Timestamptz>,
        dial_started_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        duration_seconds -> Nullable<Int4>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Nullable<Text>,
        status -> Text,
        max_concurrency -> Int4,
        created_by -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        kind -> Text,
        dedupe_key -> Text,
        payload -> Jsonb,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<Timestamptz>,
        done_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    phone_numbers (id) {
        id -> Uuid,
        phone_number -> Text,
        status -> Text,
        dedicated_to -> Nullable<Uuid>,
        provider_sid -> Nullable<Text>,
        lease_holder -> Nullable<Text>,
        lease_instance -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamptz>,
        total_calls -> Int8,
        total_seconds -> Int8,
        total_minutes -> Int8,
        last_used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        lease_tenant -> Nullable<Uuid>,
    }
}

diesel::table! {
    pool_provisioning (id) {
        id -> Bool,
        holder -> Nullable<Text>,
        held_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    profiles (id) {
        id -> Uuid,
        phone_number -> Nullable<Text>,
        is_subscribed -> Bool,
        stripe_customer_id -> Nullable<Text>,
        display_name -> Nullable<Text>,
        plan -> Text,
        max_concurrent_calls -> Int4,
        handoff_number -> Nullable<Text>,
        preferred_language -> Text,
        voice -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        allowed_languages -> Array<Text>,
    }
}

diesel::table! {
    reservation_requests (id) {
        id -> Uuid,
        call_sid -> Text,
        user_id -> Nullable<Uuid>,
        customer_name -> Nullable<Text>,
        customer_phone -> Nullable<Text>,
        answers -> Jsonb,
        requested_date -> Nullable<Date>,
        requested_time -> Nullable<Time>,
        party_size -> Nullable<Int4>,
        status -> Text,
        shop_notified_at -> Nullable<Timestamptz>,
        sms_body_sent -> Nullable<Text>,
        sms_sent_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    transcript_segments (id) {
        id -> Int8,
        call_sid -> Text,
        seq -> Int4,
        role -> Text,
        text -> Text,
        spoken_at -> Timestamptz,
    }
}

diesel::table! {
    user_prompts (id) {
        id -> Uuid,
        user_id -> Uuid,
        system_prompt -> Text,
        config_metadata -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_events (source, event_id) {
        source -> Text,
        event_id -> Text,
        received_at -> Timestamptz,
    }
}

diesel::joinable!(call_logs -> profiles (user_id));
diesel::joinable!(campaign_targets -> campaigns (campaign_id));
diesel::joinable!(campaigns -> profiles (user_id));
diesel::joinable!(reservation_requests -> profiles (user_id));
diesel::joinable!(user_prompts -> profiles (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_log,
    call_logs,
    campaign_targets,
    campaigns,
    outbox,
    phone_numbers,
    pool_provisioning,
    profiles,
    reservation_requests,
    transcript_segments,
    user_prompts,
    webhook_events,
);
