//! Uploads into containerd's content store through containerd's own Content service
//! (`containerd.services.content.v1.Content`, gRPC on containerd's socket, `--containerd-address`):
//! the only way a proxy differ can store the layer a Diff computed. The upload is the one
//! containerd's own remote writer makes: a Write stream that opens with STAT on a ref, sends the
//! bytes as WRITE messages at their offsets (each answered with the new offset, checked), and
//! ends with COMMIT carrying the size, the digest and the labels, which containerd checks
//! before it stores the blob under its digest.
//!
//! containerd garbage-collects content that nothing references and no lease holds, and it
//! forwards its caller's namespace to proxy plugins but not its caller's lease: so the upload
//! runs under a lease of its own (Leases/Create), which expires by itself after
//! [`LEASE_SECONDS`] (label `containerd.io/gc.expire`), by when the caller (Docker's commit)
//! references the blob from its image; a failed upload deletes it at once.
//!
//! Invariants:
//! - the caller's `containerd-namespace` header goes with every call, and a `containerd-lease`
//!   one (the caller's, when containerd forwarded it, else the upload's own): the blob belongs
//!   to the caller's namespace and is held until it is referenced;
//! - nothing is committed unless every byte was produced and accepted: a producer failure or a
//!   content-service failure ends the stream without COMMIT, and a ref this differ made up is
//!   aborted (best effort: containerd also drops stale uploads by itself);
//! - a COMMIT answered AlreadyExists is a success (the same bytes are stored), as for
//!   containerd's walking differ; the blob then gets the `containerd.io/uncompressed` label if
//!   it lacks it (Info, Update).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Request, Status};

use super::api::containerd::services::content::v1::content_client::ContentClient;
use super::api::containerd::services::content::v1::{
    AbortRequest, InfoRequest, UpdateRequest, WriteAction, WriteContentRequest,
    WriteContentResponse,
};
use super::api::containerd::services::leases::v1::leases_client::LeasesClient;
use super::api::containerd::services::leases::v1::{CreateRequest, DeleteRequest};
use super::ops::Failure;

/// The label containerd's differs put on a compressed layer: the digest of its tar.
pub const UNCOMPRESSED: &str = "containerd.io/uncompressed";

/// The request headers containerd reads its context from, forwarded on every call.
const FORWARDED: [&str; 2] = ["containerd-namespace", LEASE_HEADER];

/// The header naming the lease a call runs under.
const LEASE_HEADER: &str = "containerd-lease";

/// How long the lease of an upload holds the blob (containerd's own clients take 24 hours).
pub const LEASE_SECONDS: u64 = 3600;

/// A connection to containerd's Content service, with the headers of the Diff it serves.
pub struct Store {
    client: ContentClient<Channel>,
    leases: LeasesClient<Channel>,
    /// The lease this upload created (none when the caller's holds it).
    own_lease: Option<String>,
    headers: Vec<(
        &'static str,
        tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    )>,
    address: String,
}

/// What the producer wrote: the blob's digest and size, and the tar's digest.
pub struct Produced {
    pub digest: String,
    pub size: u64,
    pub uncompressed: String,
}

impl Store {
    /// Connects to containerd at `address` (a unix socket), forwarding `incoming`'s headers.
    pub async fn connect(address: &Path, incoming: &MetadataMap) -> Result<Store, Failure> {
        let socket = address.to_path_buf();
        let shown = address.display().to_string();
        let channel = Endpoint::try_from("http://[::]:0")
            .map_err(|e| Failure::internal(format!("endpoint: {e}")))?
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                tokio::net::UnixStream::connect(socket.clone())
            }))
            .await
            .map_err(|e| {
                Failure::unavailable(format!(
                    "cannot reach containerd's content service at {shown}: {e} \
                     (--containerd-address)"
                ))
            })?;
        let headers = FORWARDED
            .iter()
            .filter_map(|&key| incoming.get(key).map(|v| (key, v.clone())))
            .collect();
        Ok(Store {
            client: ContentClient::new(channel.clone()),
            leases: LeasesClient::new(channel),
            own_lease: None,
            headers,
            address: shown,
        })
    }

    /// The lease the upload runs under: the caller's, or one created here that expires after
    /// [`LEASE_SECONDS`].
    pub async fn hold(&mut self) -> Result<String, Failure> {
        if let Some((_, lease)) = self.headers.iter().find(|(k, _)| *k == LEASE_HEADER) {
            return Ok(format!(
                "the caller's lease {}",
                lease.to_str().unwrap_or("(not text)")
            ));
        }
        let expires = SystemTime::now() + std::time::Duration::from_secs(LEASE_SECONDS);
        let create = CreateRequest {
            id: String::new(),
            labels: HashMap::from([("containerd.io/gc.expire".to_string(), rfc3339(expires))]),
        };
        let lease = self
            .leases
            .create(self.request(create))
            .await
            .map_err(|s| self.failure("creating a lease for the diff", &s))?
            .into_inner()
            .lease
            .unwrap_or_default();
        let value = lease.id.parse().map_err(|_| {
            Failure::internal(format!(
                "containerd made a lease id {:?} that is not a header",
                lease.id
            ))
        })?;
        self.headers.push((LEASE_HEADER, value));
        self.own_lease = Some(lease.id.clone());
        Ok(format!("lease {} (expires in {LEASE_SECONDS} s)", lease.id))
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        for (key, value) in &self.headers {
            request.metadata_mut().insert(*key, value.clone());
        }
        request
    }

    fn failure(&self, what: &str, status: &Status) -> Failure {
        let message = format!(
            "{what} through containerd's content service at {} failed: {} ({:?})",
            self.address,
            status.message(),
            status.code()
        );
        // NotImplemented would send containerd to its next differ as if this one declined.
        let code = match status.code() {
            Code::Unimplemented | Code::Unknown => Code::Internal,
            code => code,
        };
        Failure { code, message }
    }

    /// Uploads the chunks `chunks` yields under `reference`, then commits them with `labels`
    /// (plus [`UNCOMPRESSED`]) once `produced` says what they were. `fresh`: the ref was made
    /// up here, so a failed upload is aborted.
    pub async fn upload(
        &mut self,
        reference: &str,
        fresh: bool,
        mut chunks: mpsc::Receiver<Vec<u8>>,
        produced: impl std::future::Future<Output = Result<Produced, Failure>>,
        mut labels: HashMap<String, String>,
    ) -> Result<Produced, Failure> {
        let written = self
            .write(reference, &mut chunks, produced, &mut labels)
            .await;
        // The producer sees the stream is gone (its sends fail) and stops.
        drop(chunks);
        match written {
            Ok(produced) => Ok(produced),
            Err(failure) => {
                if fresh {
                    let abort = AbortRequest {
                        r#ref: reference.to_string(),
                    };
                    // NotFound: nothing of the upload was left.
                    if let Err(e) = self.client.abort(self.request(abort)).await {
                        if e.code() != Code::NotFound {
                            eprintln!(
                                "lcfs differ: aborting the upload {reference:?} failed: {}",
                                e.message()
                            );
                        }
                    }
                }
                if let Some(id) = self.own_lease.take() {
                    let delete = DeleteRequest {
                        id: id.clone(),
                        sync: false,
                    };
                    if let Err(e) = self.leases.delete(self.request(delete)).await {
                        eprintln!(
                            "lcfs differ: deleting the lease {id:?} failed (it expires by \
                             itself): {}",
                            e.message()
                        );
                    }
                }
                Err(failure)
            }
        }
    }

    async fn write(
        &mut self,
        reference: &str,
        chunks: &mut mpsc::Receiver<Vec<u8>>,
        produced: impl std::future::Future<Output = Result<Produced, Failure>>,
        labels: &mut HashMap<String, String>,
    ) -> Result<Produced, Failure> {
        let (requests, stream) = mpsc::channel::<WriteContentRequest>(2);
        let stat = WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: reference.to_string(),
            ..WriteContentRequest::default()
        };
        // The server answers (and so sends its headers) once it has the first message.
        requests
            .send(stat)
            .await
            .map_err(|_| Failure::internal("the upload stream closed"))?;
        let mut responses = self
            .client
            .write(self.request(ReceiverStream::new(stream)))
            .await
            .map_err(|s| self.failure("opening the upload", &s))?
            .into_inner();
        next(&mut responses, "STAT")
            .await
            .map_err(|s| self.failure("starting the upload", &s))?;
        let mut offset: i64 = 0;
        while let Some(data) = chunks.recv().await {
            let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
            let write = WriteContentRequest {
                action: WriteAction::Write as i32,
                offset,
                data,
                ..WriteContentRequest::default()
            };
            send(&requests, write)?;
            let reply = next(&mut responses, "WRITE")
                .await
                .map_err(|s| self.failure("writing the diff", &s))?;
            offset += len;
            if reply.offset != offset {
                return Err(Failure::internal(format!(
                    "containerd's content service at {} holds {} bytes of upload {reference:?} \
                     after {offset} were sent",
                    self.address, reply.offset
                )));
            }
        }
        let produced = produced.await?;
        if u64::try_from(offset).ok() != Some(produced.size) {
            return Err(Failure::internal(format!(
                "{offset} bytes were sent of a diff of {} bytes",
                produced.size
            )));
        }
        labels.insert(UNCOMPRESSED.to_string(), produced.uncompressed.clone());
        let commit = WriteContentRequest {
            action: WriteAction::Commit as i32,
            total: offset,
            expected: produced.digest.clone(),
            offset,
            labels: labels.clone(),
            ..WriteContentRequest::default()
        };
        send(&requests, commit)?;
        match next(&mut responses, "COMMIT").await {
            Ok(reply) if reply.offset == offset && reply.digest == produced.digest => Ok(produced),
            Ok(reply) => Err(Failure::internal(format!(
                "containerd's content service at {} committed {} bytes of digest {:?}, not the \
                 {offset} bytes of {} sent",
                self.address, reply.offset, reply.digest, produced.digest
            ))),
            Err(status) if status.code() == Code::AlreadyExists => {
                drop(requests);
                self.label_existing(&produced).await?;
                Ok(produced)
            }
            Err(status) => Err(self.failure("committing the diff", &status)),
        }
    }

    /// The blob of `produced` was already stored: it gets the uncompressed label if it lacks it.
    async fn label_existing(&mut self, produced: &Produced) -> Result<(), Failure> {
        let info = InfoRequest {
            digest: produced.digest.clone(),
        };
        let info = self
            .client
            .info(self.request(info))
            .await
            .map_err(|s| self.failure("reading the stored diff's labels", &s))?
            .into_inner()
            .info
            .unwrap_or_default();
        if info.labels.contains_key(UNCOMPRESSED) {
            return Ok(());
        }
        let mut info = info;
        info.labels
            .insert(UNCOMPRESSED.to_string(), produced.uncompressed.clone());
        let update = UpdateRequest {
            info: Some(info),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![format!("labels.{UNCOMPRESSED}")],
            }),
        };
        self.client
            .update(self.request(update))
            .await
            .map_err(|s| self.failure("labelling the stored diff", &s))?;
        Ok(())
    }
}

/// The reply to the message `what` just sent.
async fn next(
    responses: &mut tonic::Streaming<WriteContentResponse>,
    what: &str,
) -> Result<WriteContentResponse, Status> {
    match responses.message().await {
        Ok(Some(reply)) => Ok(reply),
        Ok(None) => Err(Status::unavailable(format!(
            "the stream ended before the reply to {what}"
        ))),
        Err(status) => Err(status),
    }
}

fn send(
    requests: &mpsc::Sender<WriteContentRequest>,
    request: WriteContentRequest,
) -> Result<(), Failure> {
    // Lockstep: each message is answered before the next is sent, so there is room.
    requests
        .try_send(request)
        .map_err(|e| Failure::unavailable(format!("the upload stream closed: {e}")))
}

/// A ref for an upload nobody named: unique on this machine, as the walking differ's are.
pub fn unique_ref() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "lcfs-diff-{nanos}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `time` as RFC 3339 in UTC, to the second (`2006-01-02T15:04:05Z`, as Go parses it).
fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm), in unsigned arithmetic.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_to_the_second() {
        let at = |secs: u64| rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}
