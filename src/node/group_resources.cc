#include "node/group_resources.h"

#include "common/logging.h"

namespace quanta {

ResourceSet GroupResources::BundleResources(const std::string& group_hex, uint32_t index, const ResourceSet& bundle) {
  ResourceSet out;
  std::string i = std::to_string(index);
  for (const auto& [name, amount] : bundle.amounts()) {
    out.Set(name + "_group_" + i + "_" + group_hex, amount);
    out.Set(name + "_group_" + group_hex, out.Get(name + "_group_" + group_hex) + amount);
  }
  out.Set("bundle_group_" + i + "_" + group_hex, protocol::kResourceUnit);
  out.Set("bundle_group_" + group_hex, out.Get("bundle_group_" + group_hex) + protocol::kResourceUnit);
  return out;
}

protocol::BundlesReserved GroupResources::Reserve(const protocol::BundleReservation& r) {
  protocol::BundlesReserved reply;
  reply.group = r.group;
  ResourceSet wanted, added;
  std::string hex = r.group.Hex();
  for (const auto& [index, res] : r.bundles) {
    ResourceSet bundle(res);
    wanted.Add(bundle);
    ResourceSet becomes = BundleResources(hex, index, bundle);
    added.Add(becomes);
  }
  if (!dispatcher_->queue().available().Contains(wanted)) {
    reply.error = "this node has " + dispatcher_->queue().available().ToString() + " free, the bundles need " +
                  wanted.ToString();
    return reply;
  }
  dispatcher_->RemoveResources(wanted);
  dispatcher_->AddResources(added);
  Reserved& g = groups_[r.group];
  g.original.Add(wanted);
  g.added.Add(added);
  reply.ok = true;
  QLOG(kInfo) << "reserved " << r.bundles.size() << " bundle(s) of placement group " << hex << ": " << wanted.ToString();
  return reply;
}

void GroupResources::Return(const protocol::BundleReservation& r) {
  auto it = groups_.find(r.group);
  if (it != groups_.end()) {
    dispatcher_->RemoveResources(it->second.added);
    dispatcher_->AddResources(it->second.original);
    QLOG(kInfo) << "returned the bundles of placement group " << r.group.Hex();
    groups_.erase(it);
  }
  if (r.removed && on_removed_) on_removed_(r.group.Hex());
}

}  // namespace quanta
