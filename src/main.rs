fn main() {
    print!("{}", aws_auth_operator::api::crd_yaml());
}
