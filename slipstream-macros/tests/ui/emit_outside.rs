fn main() {
    slipstream::emit!(1);
}
