//! The own HTTP/1 data path: a sequential loop per connection with reused buffers, heads
//! parsed in place, a per-thread pool of upstream connections, bodies streamed with
//! back-pressure. It serves the plain requests that make nearly all traffic and hands every
//! other one to Pingora's path (`head.rs` says which), so both run the same phase chain.
//!
//! ```toml
//! [servers.web]
//! engine = "native"    # default; "pingora" sends every request through Pingora's proxy
//! ```
//!
//! - `head.rs`: parse a request head, decide whether it is served here
//! - `req_head.rs`: the request head, its fields read in place until a map is asked for
//! - `conn.rs`: the client's stream, plain TCP or TLS
//! - `client.rs`: the client connection; one request as the chain's `Downstream`
//! - `serve.rs`: the loop and the flow of one request through the phases
//! - `origin.rs`: one exchange with an upstream peer; response heads and framing
//! - `ask.rs`: one try on one peer up to the response head (both own engines)
//! - `pool.rs`: idle upstream connections per thread
//! - `chunked.rs`: the chunked coding, decoded in place
//! - `body.rs`: a response body read piece by piece, whatever its framing
//! - `respond.rs`: response heads, answers and body relay to the client
//! - `switch.rs`: upgrades: the 101 head, then both connections spliced
//! - `timer.rs`: one reusable timer per connection for its reads' deadlines
//! - `up_head.rs`: the request head for the upstream, built or the client's own

pub mod ask;
pub mod body;
pub mod chunked;
pub mod client;
pub mod conn;
pub mod head;
pub mod origin;
pub mod pool;
pub mod req_head;
pub mod respond;
pub mod serve;
pub mod switch;
pub mod timer;
pub mod up_head;
