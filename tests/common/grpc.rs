//! A real gRPC server in the test process: the OTLP trace service (tonic, the generated
//! OTLP types), recording what it receives. The OTel tests export to it; the gRPC-web tests
//! call it through tidegate.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::{Arc, Mutex};

#[derive(Default, Clone)]
pub struct Received(Arc<Mutex<Vec<Span>>>);

impl Received {
    pub fn add(&self, r: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for rs in r.resource_spans {
            for ss in rs.scope_spans {
                all.extend(ss.spans);
            }
        }
    }
    pub fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A gRPC OTLP receiver on a free port, served by a runtime of its own.
pub fn grpc_receiver() -> (Received, u16, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rx = Received::default();
    let l = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = l.local_addr().unwrap().port();
    let r2 = rx.clone();
    rt.spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(r2))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
            .await;
    });
    (rx, port, rt)
}
