//! `deliveries show ID --request N`: what attempt N of a delivery sent, as the receiver got it:
//! the request line, the headers (rebuilt by the service; no secret, extra headers' values
//! masked) and the body bytes, like a raw HTTP request.

use super::remote::{Client, print_value, segment, text_of};
use super::{Outcome, usage};

pub fn show(client: &Client, id: &str, number: &str, json: bool) -> Outcome {
    if number.parse::<u32>().map_or(true, |n| n == 0) {
        return Err(usage(format!(
            "--request: \"{number}\" is not an attempt number (1, 2, …)"
        )));
    }
    let sent = client.call(
        "GET",
        &format!("/v1/deliveries/{}/attempts/{number}/request", segment(id)),
        None,
    )?;
    print_value(json, &sent, || {
        let mut text = format!("{} {}\n", text_of(&sent["method"]), text_of(&sent["url"]));
        for header in sent["headers"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            text.push_str(&format!(
                "{}: {}\n",
                text_of(&header["name"]),
                text_of(&header["value"])
            ));
        }
        // The body exactly as sent (events are JSON, so text), then a line on the signatures.
        text.push('\n');
        text.push_str(sent["body"].as_str().unwrap_or(""));
        text.push_str(&format!(
            "\n\n# signatures: {}\n",
            text_of(&sent["signatures"])
        ));
        text
    })
}
