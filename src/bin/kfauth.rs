//! `kfauth`: check a pluginConfig, translate Istio RequestAuthentications, mint test tokens.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use kfauth::cli::check::check_text;
use kfauth::cli::from_istio::translate;
use kfauth::cli::mint::{mint, TokenRequest};
use kfauth::duration::parse_duration;

const USAGE: &str = "usage:
  kfauth check FILE              check a pluginConfig (JSON or YAML) or the WasmPlugin(s) in FILE
  kfauth from-istio FILE...      RequestAuthentication (+ require-jwt AuthorizationPolicy) manifests -> pluginConfig JSON
  kfauth token --key PEM --issuer URL [--alg RS256|ES256] [--kid ID] [--sub S] [--email E]
               [--groups a,b] [--aud A]... [--claim name=JSON]... [--ttl 1h]
                                 mint a signed test token";

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|problem| format!("{path}: {problem}"))
}

fn check(args: &[String]) -> Result<ExitCode, String> {
    let [path] = args else {
        return Err(USAGE.into());
    };
    let mut failed = false;
    for checked in check_text(&read(path)?).map_err(|problem| format!("{path}: {problem}"))? {
        failed |= checked.failed();
        match &checked.result {
            Ok(config) => {
                println!(
                    "{path}: {}: pluginConfig ok ({} jwt rule(s){}{})",
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
                    println!("{path}: {}: warning: {warning}", checked.label);
                }
            }
            Err(problems) => {
                for problem in problems {
                    println!("{path}: {}: error: {problem}", checked.label);
                }
            }
        }
        for problem in &checked.spec.errors {
            println!("{path}: {}: error: {problem}", checked.label);
        }
        for warning in &checked.spec.warnings {
            println!("{path}: {}: warning: {warning}", checked.label);
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn from_istio(args: &[String]) -> Result<ExitCode, String> {
    if args.is_empty() {
        return Err(USAGE.into());
    }
    let texts = args
        .iter()
        .map(|path| read(path).map(|text| (path.clone(), text)))
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

fn token(args: &[String]) -> Result<ExitCode, String> {
    let mut request = TokenRequest {
        algorithm: "RS256".into(),
        ttl: std::time::Duration::from_secs(3600),
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?,
        ..TokenRequest::default()
    };
    let mut key_path = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?
            .clone();
        match flag.as_str() {
            "--key" => key_path = Some(value),
            "--alg" => request.algorithm = value,
            "--kid" => request.kid = Some(value),
            "--issuer" => request.issuer = value,
            "--sub" => request.subject = Some(value),
            "--email" => request.email = Some(value),
            "--groups" => {
                request.groups = value
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "--aud" => request.audiences.push(value),
            "--ttl" => request.ttl = parse_duration(&value).map_err(|e| format!("--ttl: {e}"))?,
            "--claim" => {
                let (name, raw) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--claim {value}: use name=JSON"))?;
                let parsed = serde_json::from_str(raw)
                    .unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
                request.extra.insert(name.to_string(), parsed);
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let key_path = key_path.ok_or_else(|| format!("--key is required\n{USAGE}"))?;
    if request.issuer.is_empty() {
        return Err(format!("--issuer is required\n{USAGE}"));
    }
    request.key_pem = read(&key_path)?;
    println!("{}", mint(&request)?);
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((command, rest)) => match command.as_str() {
            "check" => check(rest),
            "from-istio" => from_istio(rest),
            "token" => token(rest),
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                Ok(ExitCode::SUCCESS)
            }
            other => Err(format!("unknown command `{other}`\n{USAGE}")),
        },
        None => Err(USAGE.into()),
    };
    match result {
        Ok(code) => code,
        Err(problem) => {
            eprintln!("kfauth: {problem}");
            ExitCode::from(2)
        }
    }
}
