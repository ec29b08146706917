//! A runtime [`Reply`] as an HTTP response: JSON, or an event stream,
//! with the placement headers of its model step when it made one.

use axum::body::Body;
use axum::response::Response;
use futures_util::StreamExt;
use treaty_runtime::Reply;

pub(crate) fn response(reply: Reply) -> Response {
    match reply {
        Reply::Json { body, placed } => {
            let mut res = Response::new(Body::from(body));
            crate::headers::json(&mut res);
            if let Some(p) = &placed {
                crate::headers::placed(&mut res, p);
            }
            res
        }
        Reply::Events { events, placed } => {
            let mut res = Response::new(Body::from_stream(
                events.map(Ok::<_, std::convert::Infallible>),
            ));
            crate::headers::event_stream(&mut res);
            if let Some(p) = &placed {
                crate::headers::placed(&mut res, p);
            }
            res
        }
    }
}
