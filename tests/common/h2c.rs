//! HTTP/2 requests from the tests (prior knowledge, the `h2` crate): one connection, any
//! number of streams on it.

use bytes::Bytes;

/// A response over HTTP/2.
pub struct H2Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<http::HeaderMap>,
}

pub type H2Client = h2::client::SendRequest<Bytes>;

/// An HTTP/2 connection to 127.0.0.1:port (its driver spawned on the current runtime).
pub async fn connect(port: u16) -> H2Client {
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(conn);
    client
}

/// One request on the connection, its body (if any) in one DATA frame; the whole answer.
pub async fn request(client: &H2Client, req: http::Request<()>, body: &[u8]) -> H2Answer {
    let mut client = client.clone().ready().await.unwrap();
    let (resp, mut send) = client.send_request(req, body.is_empty()).unwrap();
    if !body.is_empty() {
        send.send_data(Bytes::copy_from_slice(body), true).unwrap();
    }
    let resp = resp.await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut b = resp.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = b.data().await {
        let chunk = chunk.unwrap();
        let _ = b.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    let trailers = b.trailers().await.unwrap();
    H2Answer {
        status,
        headers,
        body: out,
        trailers,
    }
}
