//! `callsim`: the local stand-ins and the simulated Twilio caller from the command line.
//!
//! * `callsim standins` starts the OpenAI Realtime, OpenAI REST and Twilio REST stand-ins,
//!   prints the settings that point callvisor at them, and runs until Ctrl-C.
//! * `callsim call --webhook URL …` places one simulated call and prints its report as JSON.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use callvisor_standins::{
    place_call, CallEnd, CallerConfig, RealtimeMode, SignatureMode, StandIns, StandInsConfig,
};
use clap::{Parser, Subcommand, ValueEnum};

/// Local stand-ins for OpenAI and Twilio, and a simulated caller.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the three stand-ins, print their URLs, run until Ctrl-C.
    Standins {
        /// Address of the OpenAI Realtime stand-in.
        #[arg(long, default_value = "127.0.0.1:0")]
        realtime_addr: SocketAddr,
        /// Address of the OpenAI REST stand-in.
        #[arg(long, default_value = "127.0.0.1:0")]
        openai_addr: SocketAddr,
        /// Address of the Twilio REST stand-in.
        #[arg(long, default_value = "127.0.0.1:0")]
        twilio_addr: SocketAddr,
        /// What the Realtime stand-in does with caller audio.
        #[arg(long, value_enum, default_value_t = Mode::Scripted)]
        mode: Mode,
        /// Twilio account the REST stand-in accepts.
        #[arg(long, env = "TWILIO_ACCOUNT_SID")]
        account_sid: Option<String>,
        /// Its Auth Token.
        #[arg(long, env = "TWILIO_AUTH_TOKEN")]
        auth_token: Option<String>,
        /// Numbers the Twilio account owns (repeat the flag).
        #[arg(long = "number")]
        numbers: Vec<String>,
    },
    /// Place one simulated call and print the report as JSON.
    Call {
        /// Voice webhook to POST to.
        #[arg(long)]
        webhook: String,
        /// URL to sign (callvisor's public URL + path); default: the webhook URL.
        #[arg(long)]
        sign_url: Option<String>,
        /// Twilio Auth Token to sign with.
        #[arg(long, env = "TWILIO_AUTH_TOKEN")]
        auth_token: String,
        /// AccountSid sent in the webhook.
        #[arg(long, env = "TWILIO_ACCOUNT_SID")]
        account_sid: Option<String>,
        /// Caller number.
        #[arg(long, default_value = "+15005550006")]
        from: String,
        /// Called number.
        #[arg(long, default_value = "+15005550001")]
        to: String,
        /// Seconds of caller audio.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Replace the stream URL's scheme and host, e.g. ws://127.0.0.1:8080.
        #[arg(long)]
        stream_override: Option<String>,
        /// Signature to send.
        #[arg(long, value_enum, default_value_t = Signature::Valid)]
        signature: Signature,
        /// How the call ends after the audio.
        #[arg(long, value_enum, default_value_t = End::Stop)]
        end: End,
        /// Milliseconds to wait after the last frame before ending.
        #[arg(long, default_value_t = 1000)]
        linger_ms: u64,
        /// Bound on the whole call, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        /// Print the full report (every media event, round trip and mark).
        #[arg(long)]
        full: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Echo,
    Scripted,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Signature {
    Valid,
    Wrong,
    Missing,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum End {
    Stop,
    Abrupt,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    actix_rt::System::new().block_on(async move {
        match cli.command {
            Command::Standins {
                realtime_addr,
                openai_addr,
                twilio_addr,
                mode,
                account_sid,
                auth_token,
                numbers,
            } => {
                let mut config = StandInsConfig::default();
                config.realtime.bind = realtime_addr;
                config.realtime.mode = match mode {
                    Mode::Echo => RealtimeMode::Echo,
                    Mode::Scripted => RealtimeMode::Scripted,
                };
                config.openai.bind = openai_addr;
                config.twilio.bind = twilio_addr;
                if let Some(sid) = account_sid {
                    config.twilio.account_sid = sid;
                }
                if let Some(token) = auth_token {
                    config.twilio.auth_token = token;
                }
                config.twilio.numbers = numbers;
                run_standins(config).await
            }
            Command::Call {
                webhook,
                sign_url,
                auth_token,
                account_sid,
                from,
                to,
                seconds,
                stream_override,
                signature,
                end,
                linger_ms,
                timeout_secs,
                full,
            } => {
                if !(seconds.is_finite() && seconds >= 0.0) {
                    eprintln!("--seconds must be a non-negative number");
                    return ExitCode::from(2);
                }
                let mut config = CallerConfig::new(webhook, auth_token);
                config.sign_url = sign_url;
                if let Some(sid) = account_sid {
                    config.account_sid = sid;
                }
                config.from = from;
                config.to = to;
                config.speak_for = Duration::from_secs_f64(seconds);
                config.stream_url_override = stream_override;
                config.signature = match signature {
                    Signature::Valid => SignatureMode::Valid,
                    Signature::Wrong => SignatureMode::Wrong,
                    Signature::Missing => SignatureMode::Missing,
                };
                let after_audio = Duration::from_millis(linger_ms);
                config.end = match end {
                    End::Stop => CallEnd::Stop { after_audio },
                    End::Abrupt => CallEnd::Abrupt { after_audio },
                };
                config.timeout = Duration::from_secs(timeout_secs);
                run_call(config, full).await
            }
        }
    })
}

async fn run_standins(config: StandInsConfig) -> ExitCode {
    let account = config.twilio.account_sid.clone();
    let token = config.twilio.auth_token.clone();
    let standins = match StandIns::start_with(config).await {
        Ok(standins) => standins,
        Err(err) => {
            eprintln!("STANDINS_FAILED error={err}");
            return ExitCode::FAILURE;
        }
    };
    for (name, value) in standins.env() {
        println!("{name}={value}");
    }
    println!("TWILIO_ACCOUNT_SID={account}");
    println!("TWILIO_AUTH_TOKEN={token}");
    println!("# any non-empty OPENAI_API_KEY is accepted; Ctrl-C to stop");
    if let Err(err) = tokio::signal::ctrl_c().await {
        eprintln!("STANDINS_SIGNAL_FAILED error={err}");
    }
    standins.stop().await;
    ExitCode::SUCCESS
}

async fn run_call(config: CallerConfig, full: bool) -> ExitCode {
    match place_call(config).await {
        Ok(mut report) => {
            if !full {
                // Keep the printed report readable: the summaries stay, the per-event lists go.
                report.media_events.clear();
                report.echo_rtt_us.clear();
            }
            match serde_json::to_string_pretty(&report) {
                Ok(json) => println!("{json}"),
                Err(err) => {
                    eprintln!("REPORT_SERIALIZE_FAILED error={err}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("CALL_FAILED error={err}");
            ExitCode::FAILURE
        }
    }
}
