//! The `clockeye-webhooks` command; everything is in the library (`cli::main`).

fn main() -> std::process::ExitCode {
    clockeye_webhooks::main()
}
