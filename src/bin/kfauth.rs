//! `kfauth`: check a pluginConfig, translate Istio RequestAuthentications, mint
//! test tokens and print the JWKS that verifies them, explain a request.
//!
//! Exit codes (`explain` has its own: see its help): 0 ok (warnings included); 1 problems found: a configuration
//! error, something `from-istio` cannot translate into a rule, or an input
//! that cannot be used (a file that cannot be read or parsed, a key in a
//! format kfauth does not read); 2 a usage error: the command line itself is
//! wrong (unknown command or option, a missing or malformed value, options
//! that contradict each other), found before any file is opened.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{CommandFactory, Parser, Subcommand};
use serde_json::Value;

use kfauth::cli::check::check_text;
use kfauth::cli::explain::answers::ReviewAnswer;
use kfauth::cli::explain::{explain as explain_request, Decision, Explanation, Inputs, Request};
use kfauth::cli::from_istio::translate;
use kfauth::cli::mint::{parse_claim, ClaimSet, SigningKey};
use kfauth::duration::parse_duration;
use kfauth::jwks::Algorithm;

#[derive(Parser)]
#[command(
    name = "kfauth",
    version,
    about = "Check kfauth configurations, translate Istio's JWT rules, mint test tokens, \
             explain what kfauth does with a request",
    after_help = "Exit codes: 0 ok (warnings included), 1 problems found (configuration errors, \
                  untranslatable input, a file or key that cannot be read or used), 2 usage error; \
                  explain: 0 allowed, 1 refused, 2 usage, 3 waits for a review, 4 unusable inputs."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pluginConfig (JSON or YAML) or every WasmPlugin in a manifest.
    ///
    /// Uses the filter's own parser and prints `pluginConfig ok` or every error
    /// with its field path; warns about path and host regexes that look like
    /// pasted Istio globs (`/dex/*`), are not anchored (no leading `^`), or
    /// expect a query string in a path, and about a WasmPlugin's unpinned image
    /// or API-server token. Exit 1 on an error, 0 with warnings only.
    Check {
        /// File holding a pluginConfig, or Kubernetes manifests with WasmPlugins
        /// (e.g. `kubectl kustomize` output).
        file: PathBuf,
    },
    /// Turn RequestAuthentication manifests (and a require-JWT
    /// AuthorizationPolicy) into the equivalent pluginConfig JSON on stdout.
    ///
    /// On stderr: `error:` lines (exit 1, nothing on stdout) for what cannot
    /// become one pluginConfig (objects of different workloads, a repeated
    /// issuer, an unrendered placeholder, no rule at all, a file that cannot
    /// be read or parsed); `warning:` lines for what stays in Istio; `note:`
    /// lines saying where the WasmPlugin goes.
    FromIstio {
        /// Manifest files (YAML or JSON, several documents each).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Mint a signed test token (never for production identities).
    ///
    /// The options set `iss`, `sub`, `aud`, `email`, `groups`, `iat` (now) and
    /// `exp` (now + --ttl). `--claim NAME=VALUE` sets any other claim, and also
    /// a registered one (`exp=1000` mints an expired token, `iat`, `nbf`, `iss`):
    /// it then replaces the default, and giving both the option and `--claim`
    /// for one claim is a usage error.
    Token {
        #[command(flatten)]
        key: KeyArgs,
        /// `iss` (required, unless --claim iss=...).
        #[arg(long, value_name = "URL")]
        issuer: Option<String>,
        /// `sub`.
        #[arg(long, value_name = "S")]
        sub: Option<String>,
        /// `email`.
        #[arg(long, value_name = "E")]
        email: Option<String>,
        /// `groups`, as a JSON array.
        #[arg(long, value_name = "a,b", value_delimiter = ',')]
        groups: Vec<String>,
        /// `aud` (a string; repeated: a list).
        #[arg(long, value_name = "A")]
        aud: Vec<String>,
        /// Any claim; VALUE is JSON when it parses (`3`, `true`, `["a"]`), else a string.
        #[arg(long, value_name = "NAME=VALUE", value_parser = parse_claim)]
        claim: Vec<(String, Value)>,
        /// Lifetime: `exp` = now + TTL [default: 1h].
        #[arg(long, value_name = "TTL", value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// Print the public JWKS of a key, to serve (or paste as `jwks`) so that
    /// the tokens `kfauth token` signs with it verify.
    ///
    /// Give the same --kid and --alg as to `kfauth token`.
    Jwks {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Explain what kfauth does with one request, offline, step by step.
    ///
    /// Runs the filter's own decision on the request: skip paths and
    /// preflights, where the token is, which rule (by issuer) and key, each
    /// check, the identity headers set and removed, the review it would send
    /// to the API server, and the answer with its status and reason word.
    /// Remote keys come from --jwks files; API-server tokens (`tokenEnv`) are
    /// taken as set. Exit codes: 0 allowed, 1 refused, 2 usage, 3 the request
    /// waits for an API-server review (no --review-answer), 4 the inputs
    /// cannot be used (a configuration the filter refuses, a file that cannot
    /// be read).
    Explain(ExplainArgs),
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// pluginConfig (JSON or YAML), or a manifest holding one WasmPlugin.
    config: PathBuf,
    /// The JWKS document of a remote issuer (`jwksUri` or discovery), as
    /// its endpoint serves it; repeat for each. Without one, that issuer's
    /// fetch fails (jwks_unavailable).
    #[arg(long, value_name = "ISSUER=FILE", value_parser = parse_jwks_arg)]
    jwks: Vec<(String, PathBuf)>,
    #[arg(long, default_value = "GET")]
    method: String,
    /// `:authority`.
    #[arg(long, default_value = "kubeflow.example.com")]
    host: String,
    /// Path with its query string.
    #[arg(long, default_value = "/")]
    path: String,
    /// A request header, `name: value`; repeat for more.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// A token, sent as `Authorization: Bearer TOKEN`.
    #[arg(long, value_name = "JWT", conflicts_with = "token_file")]
    token: Option<String>,
    /// A file holding the token (surrounding whitespace ignored), sent as --token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The time, in seconds since the epoch [default: now].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    now: Option<Duration>,
    /// What the API server answers every review: `allowed`, `denied`,
    /// `unavailable`, or a file holding its JSON answer (HTTP 200). Without
    /// it, explain stops where kfauth would wait for the answer (exit 3).
    #[arg(long, value_name = "ANSWER")]
    review_answer: Option<String>,
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value
        .parse()
        .map_err(|_| "expected seconds since the epoch".to_string())?;
    Duration::try_from_secs_f64(seconds).map_err(|problem| problem.to_string())
}

fn parse_jwks_arg(value: &str) -> Result<(String, PathBuf), String> {
    // The issuer is a URL (`https://...`): split at the last `=`.
    match value.rsplit_once('=') {
        Some((issuer, file)) if !issuer.is_empty() && !file.is_empty() => {
            Ok((issuer.to_string(), PathBuf::from(file)))
        }
        _ => Err("expected ISSUER=FILE".into()),
    }
}

/// `name: value`; the value without the spaces and tabs around it, as Envoy
/// hands it to the filter (RFC 9110 section 5.5: they are not part of it).
fn parse_header(value: &str) -> Result<(String, String), String> {
    match value.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => Ok((
            name.trim().to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        )),
        _ => Err("expected `NAME: VALUE`".into()),
    }
}

#[derive(clap::Args)]
struct KeyArgs {
    /// Private key, PEM: PKCS#8 (RSA, EC P-256/P-384, Ed25519), PKCS#1 RSA
    /// (BEGIN RSA PRIVATE KEY) or SEC1 EC (BEGIN EC PRIVATE KEY).
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// Algorithm [default: RS256 for RSA keys, ES256 for P-256, ES384 for
    /// P-384, EdDSA for Ed25519]: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA.
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
    alg: Option<Algorithm>,
    /// `kid` of the key (in the token's header and the JWKS); none by default.
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(name).ok_or_else(|| {
        format!(
            "`{name}` is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
        )
    })
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|problem| format!("{}: {problem}", path.display()))
}

fn check(path: &Path) -> Result<ExitCode, String> {
    let path_text = path.display();
    let mut failed = false;
    for checked in check_text(&read(path)?).map_err(|problem| format!("{path_text}: {problem}"))? {
        failed |= checked.failed();
        let say =
            |level: &str, what: &str| println!("{path_text}: {}: {level}: {what}", checked.label);
        match &checked.result {
            Ok(config) => {
                println!(
                    "{path_text}: {}: pluginConfig ok ({} jwt rule(s){}{})",
                    checked.label,
                    config.rules.len(),
                    if config.authorization.is_some() {
                        ", authorization"
                    } else {
                        ""
                    },
                    if config.grpc.is_some() {
                        ", grpc cookie diet"
                    } else {
                        ""
                    },
                );
                for warning in &config.warnings {
                    say("warning", warning);
                }
            }
            Err(problems) => {
                for problem in problems {
                    say("error", &problem.to_string());
                }
            }
        }
        for problem in &checked.spec.errors {
            say("error", problem);
        }
        for warning in checked.spec.warnings.iter().chain(&checked.patterns) {
            say("warning", warning);
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn from_istio(paths: &[PathBuf]) -> Result<ExitCode, String> {
    let texts = paths
        .iter()
        .map(|path| read(path).map(|text| (path.display().to_string(), text)))
        .collect::<Result<Vec<_>, _>>()?;
    let translation = translate(&texts)?;
    for note in &translation.notes {
        eprintln!("note: {note}");
    }
    for warning in &translation.warnings {
        eprintln!("warning: {warning}");
    }
    for error in &translation.errors {
        eprintln!("error: {error}");
    }
    if !translation.errors.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&translation.plugin_config).map_err(|e| e.to_string())?
    );
    Ok(ExitCode::SUCCESS)
}

/// The key and its algorithm; every failure here is about the key file (exit 1).
fn load_key(args: &KeyArgs) -> Result<(SigningKey, Algorithm), String> {
    let path = args.key.display();
    let key =
        SigningKey::from_pem(&read(&args.key)?).map_err(|problem| format!("{path}: {problem}"))?;
    let algorithm = key
        .algorithm(args.alg)
        .map_err(|problem| format!("{path}: {problem}"))?;
    Ok((key, algorithm))
}

fn token(key_args: &KeyArgs, claims: &ClaimSet) -> Result<ExitCode, String> {
    let (key, algorithm) = load_key(key_args)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let (token, _) = key.sign(algorithm, key_args.kid.as_deref(), claims.claims(now))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn jwks(key_args: &KeyArgs) -> Result<ExitCode, String> {
    let (key, algorithm) = load_key(key_args)?;
    let jwks = key.jwks(algorithm, key_args.kid.as_deref())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&jwks).map_err(|e| e.to_string())?
    );
    eprintln!(
        "note: {} key, alg {}{}",
        key.kind(),
        algorithm.name(),
        key_args
            .kid
            .as_deref()
            .map_or(" (no kid)".to_string(), |kid| format!(", kid {kid}"))
    );
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 allowed, 1 refused, 3 waits for a review, 4 unusable inputs.
fn explain(args: &ExplainArgs) -> ExitCode {
    match explanation(args) {
        Ok(explanation) => {
            for line in &explanation.lines {
                println!("{line}");
            }
            ExitCode::from(match explanation.decision {
                Decision::Allowed => 0,
                Decision::Refused => 1,
                Decision::Waits => 3,
            })
        }
        Err(problem) => {
            eprintln!("kfauth: {problem}");
            ExitCode::from(4)
        }
    }
}

fn explanation(args: &ExplainArgs) -> Result<Explanation, String> {
    let bytes = |path: &Path| {
        std::fs::read(path).map_err(|problem| format!("{}: {problem}", path.display()))
    };
    let jwks = args
        .jwks
        .iter()
        .map(|(issuer, path)| Ok((issuer.clone(), bytes(path)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(read(path)?.trim().to_string()),
        (None, None) => None,
    };
    let mut headers = args.headers.clone();
    if let Some(token) = token {
        headers.push(("authorization".into(), format!("Bearer {token}")));
    }
    let now = match args.now {
        Some(now) => now,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?,
    };
    let review_answer = match args.review_answer.as_deref() {
        None => None,
        Some(word) => match ReviewAnswer::from_word(word) {
            Some(answer) => Some(answer),
            None => Some(ReviewAnswer::Document(bytes(Path::new(word))?)),
        },
    };
    explain_request(&Inputs {
        config_text: read(&args.config)?,
        jwks,
        request: Request {
            method: args.method.clone(),
            host: args.host.clone(),
            path: args.path.clone(),
            headers,
        },
        now,
        review_answer,
    })
}

fn main() -> ExitCode {
    // clap prints help and version with exit 0, and its usage errors with exit 2.
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Check { file } => check(file),
        Command::FromIstio { files } => from_istio(files),
        Command::Token {
            key,
            issuer,
            sub,
            email,
            groups,
            aud,
            claim,
            ttl,
        } => {
            let claims = ClaimSet {
                issuer: issuer.clone(),
                subject: sub.clone(),
                audiences: aud.clone(),
                email: email.clone(),
                groups: groups.iter().filter(|g| !g.is_empty()).cloned().collect(),
                ttl: *ttl,
                extra: claim.clone(),
            };
            if let Err(problem) = claims.conflicts() {
                Cli::command()
                    .find_subcommand_mut("token")
                    .map(|token| token.clone().bin_name("kfauth token"))
                    .unwrap_or_else(Cli::command)
                    .error(clap::error::ErrorKind::ArgumentConflict, problem)
                    .exit();
            }
            token(key, &claims)
        }
        Command::Jwks { key } => jwks(key),
        Command::Explain(args) => return explain(args),
    };
    match result {
        Ok(code) => code,
        Err(problem) => {
            eprintln!("kfauth: {problem}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_are_exit_code_2() {
        let error = Cli::try_parse_from(["kfauth", "token", "--issuer", "x"])
            .err()
            .map(|error| error.exit_code());
        assert_eq!(error, Some(2));
    }
}
