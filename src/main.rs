fn main() {
    std::process::exit(faxgate::cli::main());
}
